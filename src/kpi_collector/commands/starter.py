"""The starter files `kpi init` writes."""

SCHEMA_FILE = "kpi.schema.json"

# editors that read JSON Schema (yaml-language-server) complete and check keys with it
STARTER_CONFIG = (
    f"# yaml-language-server: $schema=./{SCHEMA_FILE}\n"
    + """\
# kpi.yaml: which KPIs to collect, where to keep them, where to send them.
# Check it with `kpi validate` (no network), collect with `kpi run`, look with `kpi history`.
# ${VAR} and ${VAR:-default} are read from the environment and from .env beside this file.

# store: sqlite:///kpi.db            # SQLAlchemy URL; default: kpi.db beside this file
timezone: UTC                        # days, weeks and months are counted in this zone
schedule: "0 7 * * *"                # cron for `kpi schedule`
north_star: github.stars             # the KPI shown first everywhere
defaults: {timeout: 20, retries: 2, concurrency: 64, per_host: 8}

kpis:
  github.stars: {title: GitHub stars, target: 5000}
  github.forks: {title: GitHub forks}

sources:
  # A public GitHub repository; a token (optional) raises the rate limit.
  - name: github
    type: github
    repo: python/cpython
    token: "${GITHUB_TOKEN:-}"

  # Any web page: count elements or read a number with a CSS selector.
  - name: blog
    type: html
    url: https://www.python.org/blogs/
    metrics:
      posts: {css: "ul.list-recent-posts li", count: true}

  # Any JSON API: each metric is a JMESPath into the answer.
  # - name: crm
  #   type: http_json
  #   url: https://api.example.com/v1/stats
  #   auth: {bearer: "${CRM_TOKEN}"}
  #   metrics:
  #     paying_customers: data.customers.paying

  # A query against your own database, read-only.
  # - name: app
  #   type: sql
  #   url: "${APP_DATABASE_URL}"
  #   metrics:
  #     signups_today: SELECT count(*) FROM users WHERE created_at >= current_date

destinations:
  - {type: csv, path: kpis.csv, every: day}
"""
)

ENV_EXAMPLE = """\
# Copy to .env (beside kpi.yaml) and fill in; .env is read by kpi but never printed.
GITHUB_TOKEN=
# CRM_TOKEN=
# APP_DATABASE_URL=postgresql+psycopg://user:password@localhost/app
"""
