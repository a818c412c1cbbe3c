"""The HTTP layer: routers, the error handler, middleware and MCP. `athenaeum.app` assembles it."""
