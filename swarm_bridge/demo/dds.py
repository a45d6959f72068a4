"""The Fast DDS profile the fleet demo runs its processes with: no data-sharing delivery.

With data-sharing (Fast DDS uses it between processes of one host for fixed-size types such as
geometry_msgs/Twist), a reader that falls far behind its writer missed samples in the demo on a loaded
machine (one Twist stream lost up to 342 of 2,335); over the shared-memory transport, reliability repairs gaps.
Readers get room for 20,000 samples, as the robot bridge gives its own (swarm_bridge.ros.reader_limits).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PROFILES_ENV", "use_profile"]

PROFILES_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"

_PROFILE = """<?xml version="1.0" encoding="UTF-8"?>
<dds xmlns="http://www.eprosima.com">
  <profiles>
    <data_writer profile_name="swarm_bridge_writer" is_default_profile="true">
      <qos><data_sharing><kind>OFF</kind></data_sharing></qos>
    </data_writer>
    <data_reader profile_name="swarm_bridge_reader" is_default_profile="true">
      <qos><data_sharing><kind>OFF</kind></data_sharing></qos>
      <topic><resourceLimitsQos><max_samples>20000</max_samples><max_instances>1</max_instances>
        <max_samples_per_instance>20000</max_samples_per_instance><allocated_samples>100</allocated_samples>
      </resourceLimitsQos></topic>
    </data_reader>
  </profiles>
</dds>
"""


def use_profile(folder: Path) -> Path | None:
    """Write the profile into `folder` and make it this process's (and its children's) default, unless the
    user already names a profile file; returns the file in use, or None when the user's is kept."""
    if os.environ.get(PROFILES_ENV):
        return None
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "fastdds_profile.xml"
    path.write_text(_PROFILE)
    os.environ[PROFILES_ENV] = str(path)
    return path
