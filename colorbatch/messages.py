"""One-line messages for users: "did you mean" hints and pydantic errors named by field."""
from __future__ import annotations

import difflib


def did_you_mean(word: str, choices) -> str:
    """``"; did you mean X?"`` for the closest of ``choices``, or ``""``."""
    match = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {match[0]}?" if match else ""


def format_pydantic(exc, where: str, model: type) -> list[str]:
    """One line per problem in a pydantic ``ValidationError``, each starting with ``where``."""
    fields = list(getattr(model, "model_fields", {}))
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        kind = err.get("type", "")
        if kind == "extra_forbidden":
            name = str(err["loc"][0]) if err.get("loc") else loc
            hint = did_you_mean(name, fields)
            if not hint and fields:
                hint = f" (options: {', '.join(fields)})"
            out.append(f"{where}.{loc}: unknown option{hint}")
        elif kind == "missing":
            out.append(f"{where}.{loc}: missing required option")
        else:
            msg = err.get("msg", "invalid value")
            given = err.get("input")
            shown = f" (got {given!r})" if given is not None and not isinstance(given, dict) else ""
            out.append(f"{where}.{loc}: {msg}{shown}")
    return out
