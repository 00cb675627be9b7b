"""Losses by name: a model's ``loss:`` section picks one with ``name``, the other keys are its arguments."""

from kptool.registry import Registry

LOSSES = Registry("loss")
