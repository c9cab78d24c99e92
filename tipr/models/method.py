"""What a tipr model is trained as: the CLIP baseline, ECCA, GEA or both, and which heads each has."""

from __future__ import annotations

from enum import StrEnum


class Method(StrEnum):
    """A training method; its value is the name users type (``--method ecca+gea``, config.json)."""

    CLIP = "clip"
    ECCA = "ecca"
    GEA = "gea"
    ECCA_GEA = "ecca+gea"

    @property
    def uses_ecca(self) -> bool:
        """Prototype fusion and unified prototypes; trained without identity labels (WIGA + EPGA + FMC)."""
        return self in (Method.ECCA, Method.ECCA_GEA)

    @property
    def uses_gea(self) -> bool:
        """TGTE and GIF over generated intermediate images."""
        return self in (Method.GEA, Method.ECCA_GEA)

    @classmethod
    def parse(cls, name: str | Method) -> Method:
        """The method called `name`; a clear error listing the choices otherwise."""
        try:
            return cls(name)
        except ValueError:
            raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None


METHODS: tuple[str, ...] = tuple(m.value for m in Method)
