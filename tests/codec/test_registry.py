"""codec.registry.Registry: the one registration idiom (decorator, lookup by name, names)."""

import pytest

from codec.errors import InputError
from codec.registry import Registry, UnknownNameError


def test_register_returns_the_object_and_sets_its_name():
    shapes = Registry("shape", attribute="kind")

    @shapes.register("square")
    class Square:
        pass

    assert shapes.get("square") is Square and Square.kind == "square"
    assert shapes.names() == ["square"] and "square" in shapes and "circle" not in shapes


def test_a_name_is_registered_once():
    shapes = Registry("shape")
    shapes.register("square")(object())
    with pytest.raises(ValueError, match="shape 'square' is already registered"):
        shapes.register("square")(object())


def test_an_unknown_name_is_a_bad_input_naming_the_known_ones():
    shapes = Registry("shape")
    for name in ("square", "circle"):
        shapes.register(name)(name)
    message = r"unknown shape 'sqare'; did you mean 'square'\? choose from circle, square"
    with pytest.raises(UnknownNameError, match=message):
        shapes.get("sqare")
    assert issubclass(UnknownNameError, InputError)


def test_an_unknown_name_raises_the_kinds_own_error():
    class ShapeError(InputError):
        pass

    with pytest.raises(ShapeError, match="unknown shape 'x'"):
        Registry("shape", error=ShapeError).get("x")


def test_modules_register_on_the_first_lookup(monkeypatch):
    shapes = Registry("shape", modules=("fake_shapes",))
    imported = []

    def loader():  # what importing the module does: register its entries
        imported.append(1)
        shapes.register("hexagon")(6)

    monkeypatch.setattr("importlib.import_module", lambda name: loader() if name == "fake_shapes" else None)
    assert not imported
    assert shapes.get("hexagon") == 6 and shapes.names() == ["hexagon"]
    assert imported == [1]  # once
