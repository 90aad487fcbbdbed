"""A tiny MCP stdio server for the tests: one tool that computes a weight-based dose."""

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("dose")


@server.tool()
def dose_mg(weight_kg: float, mg_per_kg: float) -> str:
    """Dose in mg for a body weight and a per-kilogram dose."""
    if weight_kg <= 0:
        raise ToolError("weight must be positive")
    return f"{weight_kg * mg_per_kg:g} mg"


if __name__ == "__main__":
    server.run("stdio")
