"""What municipalities ask of the time series: InfluxQL built safely, printed as table/CSV/JSON."""
