"""The OTLP front doors (gRPC and HTTP), their limits, and the request pipeline behind them."""
