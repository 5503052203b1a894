"""The web interface (``prov ui``) and the self-contained HTML report (``prov report``).

Imported only by those commands and ``Run.report``: it needs the ``ui`` extra
(Starlette, uvicorn, numpy), which ``import gitprov`` never loads.
"""

__all__: list[str] = []
