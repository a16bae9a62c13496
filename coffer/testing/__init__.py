"""Coffer as a test double for code that talks to S3 (docs/testing.md).

``serve()`` runs a real Coffer server for the length of a ``with`` block; the pytest plugin
(coffer.testing.pytest_plugin, registered on install) wraps it in the ``coffer_server`` and
``coffer_bucket`` fixtures. This package stays light to import: pytest loads the plugin in
every session of a project that has Coffer installed, so the server is imported only when
a server starts.
"""

from coffer.testing.server import CofferServer, serve

__all__ = ["CofferServer", "serve"]
