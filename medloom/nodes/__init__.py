"""Node kinds and the one node protocol (see ``medloom.nodes.protocol``)."""
