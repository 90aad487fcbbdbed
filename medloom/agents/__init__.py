"""Agents: a model, a prompt template, sampling and a parser; the generator and refiner roles."""

from medloom.agents.agent import Agent, ModelRef, Sampling, item_variables, trace_variables
from medloom.agents.context import AgentContext
from medloom.agents.parsing import parse_reasoning
from medloom.agents.roles import Generator, GeneratorRole, Refiner, RefinerRole, VerifierRole
from medloom.agents.templates import TemplateLibrary

__all__ = [
    "Agent",
    "AgentContext",
    "Generator",
    "GeneratorRole",
    "ModelRef",
    "Refiner",
    "RefinerRole",
    "Sampling",
    "TemplateLibrary",
    "VerifierRole",
    "item_variables",
    "parse_reasoning",
    "trace_variables",
]
