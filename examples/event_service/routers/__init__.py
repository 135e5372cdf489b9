"""The event service's routes, one module per resource."""
