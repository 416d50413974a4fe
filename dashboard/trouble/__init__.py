"""Lost and stuck tasks: the /trouble page and /api/v1/trouble."""
