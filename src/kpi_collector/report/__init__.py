"""Reports: the text digest of messages and Markdown files, HTML reports, the dashboard."""
