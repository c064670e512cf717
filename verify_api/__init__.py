"""itemseal verify_api."""
