"""Request handlers, one module per endpoint family."""
