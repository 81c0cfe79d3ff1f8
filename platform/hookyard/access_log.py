"""gunicorn's access log with inbound URLs masked (gunicorn_config's ``logger_class``).

An inbound URL's id is a credential (hookyard.inbound): anyone who reads the access log could otherwise post
deliveries into the store. The line keeps the id's first characters, enough to tell connections apart.
"""

from __future__ import annotations

from gunicorn.glogging import Logger

from .inbound import masked


class MaskingLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for name in ("r", "U", "f"):  # request line, path, referer
            if isinstance(atoms.get(name), str):
                atoms[name] = masked(atoms[name])
        return atoms
