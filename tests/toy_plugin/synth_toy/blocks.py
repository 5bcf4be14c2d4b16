"""A third-party flow block: passes its rows on, stamped with their batch, after a pause (slow work, such as a
model's, for the tests that kill a flow midway). It imports only `synth_assets.plugin_api`."""

import time

from pydantic import Field

from synth_assets.plugin_api import Block, BlockConfig


class ThrottleConfig(BlockConfig):
    seconds: float = Field(0.1, ge=0, description="The pause per batch.")
    column: str = Field("batch", description="The column that gets the batch's number.")


class Throttle(Block):
    block_type = "throttle"
    Config = ThrottleConfig
    description = "Stamps each row with its batch's number, after a pause."

    def output_columns(self, columns):
        return [*columns, self.config.column]

    def process(self, batch, index):
        time.sleep(self.config.seconds)
        return batch.assign(**{self.config.column: index})
