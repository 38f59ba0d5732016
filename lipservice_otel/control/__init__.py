"""The control plane: aggregates up from receivers, policy versions down to them."""
