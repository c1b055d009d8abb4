"""Functions that exercise every type and docstring style `@tool` supports.

Shared by the schema and strict-mode tests. Postponed annotations on purpose:
the tools must resolve them with `typing.get_type_hints`.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field
from typing_extensions import NotRequired, TypedDict

from agentkit._tools.context import RunContext


class Color(enum.Enum):
    """A primary colour."""

    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Address(BaseModel):
    """A postal address."""

    street: str = Field(description="Street and number.")
    city: str
    country: str = Field(default="FR", description="ISO 3166 country code.")


class Item(BaseModel):
    sku: str = Field(description="Stock keeping unit.")
    quantity: int = Field(ge=1)


class Order(BaseModel):
    """An order to place."""

    items: list[Item]
    ship_to: Address = Field(description="Where to deliver.")
    note: str | None = None


class TreeNode(BaseModel):
    label: str
    children: list[TreeNode] = []


class Cat(BaseModel):
    kind: Literal["cat"]
    indoor: bool


class Dog(BaseModel):
    kind: Literal["dog"]
    breed: str


class Movie(TypedDict):
    """A film."""

    title: str
    year: NotRequired[int]


@dataclasses.dataclass
class Point:
    x: float
    y: float = 0.0


@dataclasses.dataclass
class Deps:
    user: str


# --- the corpus: one function per feature ------------------------------------


def no_params() -> str:
    """Say hello."""
    return "hello"


def primitives(s: str, i: int, f: float, b: bool, n: None) -> str:
    """Primitive types.

    Args:
        s: A string.
        i: An integer.
        f: A float.
        b: A boolean.
        n: Always null.
    """
    return ""


def optionals(a: int | None, b: int | None = None, c: str | None = "x") -> str:
    """Optional values.

    Args:
        a: Required but may be null.
        b: Optional, null by default.
        c: Optional with a non-null default.
    """
    return ""


def unions(v: int | str, w: float | list[str]) -> str:
    """Union types."""
    return ""


def sequences(tags: list[str], scores: tuple[float, ...], ids: set[int]) -> str:
    """Sequences of one type.

    Args:
        tags: Labels.
        scores: Any number of scores.
        ids: Distinct identifiers.
    """
    return ""


def fixed_tuple(pair: tuple[int, str]) -> str:
    """A fixed-length tuple."""
    return ""


def mapping(counts: dict[str, int]) -> str:
    """A mapping of names to counts.

    Args:
        counts: How many of each.
    """
    return ""


def literals(mode: Literal["fast", "slow"], only: Literal["yes"], level: Literal[1, 2, 3]) -> str:
    """Literal values."""
    return ""


def enums(color: Color, priority: Priority = Priority.LOW) -> str:
    """Enumerations.

    Args:
        color: Which colour.
        priority: How urgent.
    """
    return ""


def temporal(when: datetime, day: date, at: time, span: timedelta) -> str:
    """Dates and times.

    Args:
        when: A moment.
        day: A calendar day.
        at: A time of day.
        span: A duration.
    """
    return ""


def identifiers(id: UUID, amount: Decimal) -> str:
    """A UUID and a decimal."""
    return ""


def model_param(address: Address) -> str:
    """A pydantic model.

    Args:
        address: Where to go.
    """
    return ""


def nested_models(order: Order, gift: bool = False) -> str:
    """Nested pydantic models.

    Args:
        order: The order.
        gift: Wrap it.
    """
    return ""


def recursive_model(tree: TreeNode) -> str:
    """A recursive model."""
    return ""


def tagged_union(pet: Annotated[Cat | Dog, Field(discriminator="kind")]) -> str:
    """A discriminated union of models.

    Args:
        pet: The pet.
    """
    return ""


def typed_dict(movie: Movie) -> str:
    """A TypedDict."""
    return ""


def dataclass_param(point: Point) -> str:
    """A dataclass."""
    return ""


def constrained(
    percent: Annotated[int, Field(ge=0, le=100, description="A percentage.")],
    code: Annotated[str, Field(min_length=2, max_length=8, pattern=r"^[A-Z]+$")],
    step: Annotated[float, Field(gt=0, multiple_of=0.5)] = 1.0,
    items: Annotated[list[int], Field(min_length=1, max_length=3)] = [1],  # noqa: B006
) -> str:
    """Annotated constraints.

    Args:
        percent: Loses to the Field description.
        code: An upper-case code.
        step: A step size.
        items: One to three items.
    """
    return ""


def keyword_only(query: str, *, limit: int = 10, exact: bool = False) -> str:
    """Keyword-only parameters.

    Args:
        query: What to look for.
        limit: At most this many results.
        exact: Match exactly.
    """
    return ""


def positional_only(a: int, b: int = 2, /, c: int = 3) -> str:
    """Positional-only parameters."""
    return ""


def google_style(city: str, days: int = 1) -> str:
    """Forecast the weather.

    Looks the city up in the forecast service and
    returns a short summary.

    Args:
        city: Name of the city,
            possibly with a country.
        days (int): How many days ahead.

    Returns:
        A summary.

    Raises:
        ValueError: The city is unknown.
    """
    return ""


def numpy_style(city: str, days: int = 1) -> str:
    """Forecast the weather.

    Parameters
    ----------
    city : str
        Name of the city.
    days : int, optional
        How many days ahead.

    Returns
    -------
    str
        A summary.
    """
    return ""


def rest_style(city: str, days: int = 1) -> str:
    """Forecast the weather.

    :param city: Name of the city.
    :param int days: How many days ahead.
    :returns: A summary.
    """
    return ""


def epydoc_style(city: str, days: int = 1) -> str:
    """Forecast the weather.

    @param city: Name of the city.
    @param days: How many days ahead.
    @type days: int
    @return: A summary.
    """
    return ""


def undocumented(city: str) -> str:
    return ""


def with_context(ctx: RunContext[Deps], city: str) -> str:
    """Uses the run context.

    Args:
        ctx: Never in the schema.
        city: A city.
    """
    return ctx.deps.user + city


def with_bare_context(ctx: RunContext, city: str) -> str:  # type: ignore[type-arg]
    """Uses a bare RunContext."""
    return city


async def async_tool(city: str) -> str:
    """An async function."""
    return city


def awkward_names(json: str, title: str, model_config: int = 0) -> str:
    """Parameter names that clash with BaseModel or JSON-schema keywords.

    Args:
        json: A JSON text.
        title: A title, not the schema keyword.
        model_config: Not pydantic's config.
    """
    return ""


def unencodable_default(when: datetime | None = None, probe: Any = object()) -> str:  # noqa: B008
    """Defaults that have no JSON form stay out of the schema."""
    return ""


def optional_model(address: Address | None = None, tags: list[str] | None = None) -> str:
    """Optional containers.

    Args:
        address: Where, if anywhere.
        tags: Labels, if any.
    """
    return ""


CORPUS: list[Callable[..., Any]] = [
    no_params,
    primitives,
    optionals,
    unions,
    sequences,
    fixed_tuple,
    mapping,
    literals,
    enums,
    temporal,
    identifiers,
    model_param,
    nested_models,
    recursive_model,
    tagged_union,
    typed_dict,
    dataclass_param,
    constrained,
    keyword_only,
    positional_only,
    google_style,
    numpy_style,
    rest_style,
    epydoc_style,
    undocumented,
    with_context,
    with_bare_context,
    async_tool,
    awkward_names,
    unencodable_default,
    optional_model,
]
"""Every function in the corpus."""

NOT_STRICT: dict[Callable[..., Any], str] = {
    fixed_tuple: "parameter 'pair': a fixed-length tuple is not supported; use list[...] or a "
    "model in strict mode",
    mapping: "parameter 'counts': an object with free-form keys (dict[str, ...]) is not "
    "supported in strict mode",
    unencodable_default: "parameter 'probe': a value of any type (Any, bare list or dict) is "
    "not supported in strict mode",
}
"""Functions that strict mode rejects, with the problem it reports."""

STRICT: list[Callable[..., Any]] = [fn for fn in CORPUS if fn not in NOT_STRICT]
"""Functions whose schema strict mode accepts."""
