"""The template service's routes, one module per resource."""
