"""portal: see DESIGN.md for what this app owns. Its models arrive with their issue."""
