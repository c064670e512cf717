"""itemseal points_bridge."""
