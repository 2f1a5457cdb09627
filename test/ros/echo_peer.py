"""Echo peer for the interface round-trip test, run as a separate process.

Republishes every bms_interfaces message from ``in/<Name>`` to ``out/<Name>`` and serves every
service on ``srv/<Name>`` with a response filled deterministically from the request's bytes.
"""
import zlib

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from bms_ros.nodes import qos
from test.ros.interface_fill import all_interfaces, fill

QOS = qos.STREAM


def response_seed(request):
    """Seed from the request's content. Not from its CDR bytes: alignment padding after a
    string is not initialised, so the same request serialises differently in two processes.
    """
    return zlib.crc32(repr(request).encode())


class EchoPeer(Node):

    def __init__(self):
        super().__init__('echo_peer')
        self.keep = []
        for kind, name, cls in all_interfaces():
            if kind == 'msg':
                pub = self.create_publisher(cls, f'out/{name}', QOS)
                self.keep.append(self.create_subscription(
                    cls, f'in/{name}', lambda msg, pub=pub: pub.publish(msg), QOS))
            else:
                self.keep.append(self.create_service(
                    cls, f'srv/{name}',
                    lambda request, response: fill(response, response_seed(request))))


def main():
    rclpy.init()
    node = EchoPeer()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
