"""itemseal schemas."""
