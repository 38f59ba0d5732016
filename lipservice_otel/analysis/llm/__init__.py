"""The optional LLM advisor: asks a model which patterns matter, inside hard bounds."""
