"""Below the collector and the web app: settings, the SQL store and the broker client."""
