"""The application layer: services and process managers between the interfaces and the domain (ADR 0031).

It imports the domain and nothing of the layers around it: what it reads comes through the
protocols of ``application.readers``, which the projections implement.
"""
