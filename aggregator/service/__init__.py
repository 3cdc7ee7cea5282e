"""The long-running service: the scheduler and the web app."""
