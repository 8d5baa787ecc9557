"""The Gymnasium view of a backend: `KisimEnv`, observations, actions, rewards, episodes.

Imports only `kisim.core`; backends are given to it or made by name (`kisim.core.backends`).
"""
