"""The policy: its model and decision, the reasons, its document and file, its wire codec."""
