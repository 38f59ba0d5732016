"""The live page: what the analysis sees and saves, pattern by pattern, in a browser.

Served by the process that runs the analysis loop (`serve` with the embedded analysis, or
`analyze`) on `ui.endpoint`: a static page (static/) over a JSON API (api.py), sign-in and
CSRF protection (session.py, access.py) behind the control plane's tokens, and the bounded
time series the charts need (history.py), fed by the loop's observer hook.
"""
