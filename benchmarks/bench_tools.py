"""Time `@tool` on a five-parameter documented function, and argument validation.

Run with `python benchmarks/bench_tools.py`. Prints the median of several
repeats, per operation, for plain and strict tools. Not a test.
"""

from __future__ import annotations

import statistics
import timeit
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from agentkit import Tool

REPEATS = 7


class Location(BaseModel):
    city: str = Field(description="City name.")
    country: str = Field(default="FR", description="ISO 3166 country code.")


def search_flights(
    origin: Location,
    destination: Location,
    passengers: Annotated[int, Field(ge=1, le=9)],
    cabin: Literal["economy", "business", "first"] = "economy",
    max_stops: int | None = None,
) -> list[str]:
    """Search for flights between two places.

    Args:
        origin: Where the trip starts.
        destination: Where the trip ends.
        passengers: How many people travel.
        cabin: The cabin class.
        max_stops: At most this many stops; any number when null.
    """
    return []


ARGUMENTS = (
    '{"origin": {"city": "Paris", "country": "FR"}, "destination": {"city": "Tokyo", '
    '"country": "JP"}, "passengers": 2, "cabin": "business", "max_stops": null}'
)


def _median_us(operation: Callable[[], Any], number: int) -> float:
    """Median over REPEATS runs of the time of one call, in microseconds."""
    runs = timeit.repeat(operation, repeat=REPEATS, number=number)
    return statistics.median(runs) / number * 1e6


def main() -> None:
    plain = Tool.from_function(search_flights)
    strict = Tool.from_function(search_flights, strict=True)
    rows = [
        ("decorate (5 parameters)", lambda: Tool.from_function(search_flights), 200),
        ("decorate, strict", lambda: Tool.from_function(search_flights, strict=True), 200),
        ("validate arguments", lambda: plain.validate_arguments(ARGUMENTS), 20_000),
        ("validate arguments, strict", lambda: strict.validate_arguments(ARGUMENTS), 20_000),
    ]
    print(f"{'operation':<30} {'median':>12}")
    print(f"{'-' * 30} {'-' * 12}")
    for label, operation, number in rows:
        print(f"{label:<30} {_median_us(operation, number):>9.1f} µs")
    print(f"({REPEATS} repeats each; median time per call)")


if __name__ == "__main__":
    main()
