"""The course's airline assistant's tool, as `conf/task/airline.yaml` declares it: `get_ticket_price`.

The course's function looks the city up in a table of return fares and says "Unknown" for a city it does
not know. Here one city's fares service fails, as real services do, so a sweep shows which model copes
with a tool that raises (the runner sends the error's text back as the tool's result).
"""
from __future__ import annotations

TICKET_PRICES = {"london": "$799", "paris": "$899", "tokyo": "$1400", "berlin": "$499"}
# cities whose fares come from a service that is down
UNAVAILABLE = {"sydney": "the fares service for Oceania did not answer"}


def get_ticket_price(destination_city: str) -> dict:
    """The return fare to `destination_city`: {"destination_city": ..., "price": "$799" or "Unknown"}."""
    city = destination_city.strip().lower()
    if city in UNAVAILABLE:
        raise ConnectionError(UNAVAILABLE[city])
    return {"destination_city": destination_city, "price": TICKET_PRICES.get(city, "Unknown")}
