"""The GeoIP country allow list (`access.geo`): only clients whose address a local country
database places in one of `countries` (or in `access.lan`) reach the site.

Its own table under `[access]` (`[access.geo]`). stackgen reads the database on the host
at render (`stackgen.geoip`) and writes the countries' networks into a file each proxy
enforces natively; the database itself is never mounted into a container. What it stops,
what it does not and what it costs: docs/access.md.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from stackgen.models.fields import Strict, _must_exist, validate_host_path
from stackgen.options import Setting

# ISO 3166-1 alpha-2, as both database publishers write it: two capital letters. A lower-
# case code is refused, not corrected: the file says what the proxy enforces.
_CODE: Final = re.compile(r"[A-Z]{2}")


def validate_country(value: str) -> str:
    if not _CODE.fullmatch(value):
        hint = f" (write {value.upper()!r})" if _CODE.fullmatch(value.upper()) else ""
        raise ValueError(
            f"country {value!r} is not an ISO 3166-1 alpha-2 code in capitals such as 'FR'{hint}"
        )
    return value


Country = Annotated[str, AfterValidator(validate_country)]


class GeoSettings(Strict):
    countries: Annotated[
        list[Country],
        Setting(
            "an ISO 3166-1 alpha-2 country code (capitals) whose clients may reach the site; "
            "repeatable (none: GeoIP off)",
            flag="",
            default="`[]` (off)",
            readme="any other client address gets 403 from the proxy; `access.lan` and the "
            "stack's own networks are always admitted. A code the database has no network "
            "for is refused (exit 3). VPNs and the database's errors are not stopped "
            "([docs/access.md](docs/access.md#the-geoip-country-allow-list-accessgeo))",
        ),
    ] = Field(default_factory=list)
    database: Annotated[
        str | None,
        Setting(
            "a MaxMind-DB-format country database (`.mmdb`: GeoLite2-Country, DB-IP's "
            "IP-to-Country Lite), read by stackgen on the host at every render",
            flag="",
            readme="relative to the stack folder or absolute; never mounted. A regular file "
            "of at most 48 MiB, not a symbolic link, a country database (a City or ASN one "
            "is refused); re-render or `stackgen reload` after you update it",
        ),
    ] = None

    @field_validator("database")
    @classmethod
    def _exists(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        validate_host_path(value)
        return _must_exist(info, value, "access.geo.database")

    @model_validator(mode="after")
    def _consistent(self) -> GeoSettings:
        if self.countries and self.database is None:
            raise ValueError("access.geo.countries needs access.geo.database (a country .mmdb)")
        if self.database is not None and not self.countries:
            raise ValueError("access.geo.database is set but access.geo.countries is empty")
        if len(set(self.countries)) != len(self.countries):
            raise ValueError("access.geo.countries names a country twice")
        return self

    @property
    def on(self) -> bool:
        return bool(self.countries)
