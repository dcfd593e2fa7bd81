"""`module:function` scorers the tests name (scorer type python)."""


def mentions_owls(answer: str, item: dict) -> dict:
    found = "owl" in answer.lower()
    return {"score": 1.0 if found else 0.0, "pass": found, "reason": f"owl {'found' if found else 'missing'} "
                                                                     f"for {item.get('audience')}"}


def length_share(answer: str, item: dict) -> float:
    return min(1.0, len(answer) / 100)


def half(answer: str, item: dict) -> dict:
    return {"score": 0.5, "reason": "half way"}  # no pass: the threshold (0.5 by default) decides


def too_high(answer: str, item: dict) -> float:
    return 1.7  # a score is from 0 to 1


def too_high_in_a_dict(answer: str, item: dict) -> dict:
    return {"score": 1.7, "pass": True}


def raises(answer: str, item: dict) -> float:
    raise RuntimeError("this check is broken")
