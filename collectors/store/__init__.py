"""Persistence: schema, engine setup and migrations shared by collector and web."""
