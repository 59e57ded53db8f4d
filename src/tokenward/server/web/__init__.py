"""The web adapter: the only package that imports Starlette or Jinja2."""
