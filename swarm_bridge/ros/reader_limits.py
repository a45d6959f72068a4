"""Fast DDS reader resource limits that fit the routes' history depths, so a bridge behind never pushes back.

A reliable reader whose history depth is above Fast DDS's default sample limit (max_samples 5,000) refuses
new samples once that many wait unread, and does not acknowledge them: the robot's reliable publisher then
keeps them, waits and fails ("RCLError: Failed to publish: cannot publish data"; measured in every run with
the `reliable` preset, 10,000 deep, and the bridge behind at 10,000+ msgs/s, in none with these limits).
With room for the whole history a reader that is behind replaces its oldest unread samples instead.

The same profile turns Fast DDS's type propagation off for the bridge's participant (`fastdds.type_propagation`:
`disabled`): ROS 2 matches types by its own names and hashes, and Fast DDS 3.2's TypeLookup reply thread crashed a
bridge (general protection fault) among robots running two definitions, v1 and v2, of one message type.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PROFILES_ENV", "use_reader_limits"]

PROFILES_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"
DEFAULT_MAX_SAMPLES = 5000  # Fast DDS's own default for a reader

_PROFILE = """<?xml version="1.0" encoding="UTF-8"?>
<dds xmlns="http://www.eprosima.com">
  <profiles>
    <participant profile_name="swarm_bridge_participant" is_default_profile="true">
      <rtps>
        <propertiesPolicy>
          <properties>
            <property>
              <name>fastdds.type_propagation</name>
              <value>disabled</value>
            </property>
          </properties>
        </propertiesPolicy>
      </rtps>
    </participant>
    <data_reader profile_name="swarm_bridge_reader_limits" is_default_profile="true">
      <topic>
        <resourceLimitsQos>
          <max_samples>{samples}</max_samples>
          <max_instances>1</max_instances>
          <max_samples_per_instance>{samples}</max_samples_per_instance>
          <allocated_samples>100</allocated_samples>
        </resourceLimitsQos>
      </topic>
    </data_reader>
  </profiles>
</dds>
"""


def use_reader_limits(folder: Path, depth: int) -> Path | None:
    """Make readers of this process keep up to 2 x `depth` samples (the deepest route's history), unless the
    user names a Fast DDS profile file already (then theirs must do it); returns the file written, or None."""
    if os.environ.get(PROFILES_ENV):
        return None
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "fastdds_reader_limits.xml"
    path.write_text(_PROFILE.format(samples=2 * max(depth, DEFAULT_MAX_SAMPLES)))
    os.environ[PROFILES_ENV] = str(path)
    return path
