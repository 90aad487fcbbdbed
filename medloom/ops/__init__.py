"""Built-in step ops: every module here registers its ops with ``@register_op`` on import."""
