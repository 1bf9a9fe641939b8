# gunicorn settings for the portal; see deploy/systemd/etrepo-web.service.
bind = "unix:/run/etrepo/web.sock"
workers = 3
threads = 4
worker_class = "gthread"
timeout = 30
graceful_timeout = 20
# Request bodies are capped by the app (MAX_REQUEST_BYTES) and by nginx (client_max_body_size).
limit_request_line = 8190
accesslog = "-"
errorlog = "-"
# Trust X-Forwarded-* only from nginx on this host (the app's TRUSTED_PROXIES=1 does the rest).
forwarded_allow_ips = "127.0.0.1"
