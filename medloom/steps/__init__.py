"""Built-in step ops: every module here registers its ops with ``@register_step`` on import."""
