import pytest

from tests.toy_model import train_toy_model


@pytest.fixture(scope="session")
def toy_checkpoint(tmp_path_factory):
    """A real checkpoint directory of a micro model trained in seconds on the toy infilling task."""
    return train_toy_model(tmp_path_factory.mktemp("toy-model"))


@pytest.fixture(scope="session")
def toy_dream_checkpoint(tmp_path_factory):
    """A Dream-layout checkpoint trained in seconds on the same toy task (tests/toy_dream.py)."""
    from tests.toy_dream import train_toy_dream

    return train_toy_dream(tmp_path_factory.mktemp("toy-dream"))


@pytest.fixture(scope="session", params=["sdar", "fast-dllm-v2"])
def toy_block_checkpoint(request, tmp_path_factory):
    """A block-diffusion checkpoint of each layout trained in seconds on the same toy task (tests/toy_block.py)."""
    from tests.toy_block import train_toy_block

    return train_toy_block(tmp_path_factory.mktemp(f"toy-{request.param}"), request.param)
