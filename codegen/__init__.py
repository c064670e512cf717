"""itemseal codegen."""
