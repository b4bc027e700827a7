"""Thin routers: parse, validate, call the library."""
