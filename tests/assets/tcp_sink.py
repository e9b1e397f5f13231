# Counts the bytes of one TCP connection on port 5201 until EOF (or argv[1] seconds of
# silence), then prints the count. Used by the path-MTU tests (agent root test, lab test).
import socket, sys
limit = float(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', 5201))
s.listen(1)
s.settimeout(limit)
c, _ = s.accept()
c.settimeout(limit)
n = 0
try:
    while True:
        d = c.recv(65536)
        if not d:
            break
        n += len(d)
except socket.timeout:
    pass
print(n)
