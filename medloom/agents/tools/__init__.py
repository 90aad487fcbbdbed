"""Tools agents call: the tool protocol and toolbox (``base``), built-in KG tools (``kg``), passage
search (``search``), MCP stdio servers (``mcp_tools``). Each module registers its tool sets."""
