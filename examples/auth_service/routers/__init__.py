"""The auth service's routes, one module per resource."""
