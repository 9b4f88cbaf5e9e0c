# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The metrics' per-event counting, compiled twin of ``series_py`` (same names, same behaviour).

Why compiled: the hooks run once or twice per tunnel on every gateway with ``metrics:``
on; in Python they cost ~6k instructions per tunnel (1-4 % of a new connection,
docs/metrics.md), here a call and a few additions each. The readable specification,
the invariants and the numbers' meanings are in series_py; property tests
(tests/property/test_series_twins.py) drive both with the same events and compare.

Counts are C ``long long`` (a byte counter overflows after 8 EiB); a histogram's bounds
and counts are C arrays, allocated once per series.
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.math cimport INFINITY


cdef class LocalHistogram:
    """A histogram's non-cumulative per-bucket counts and its sum, in plain numbers."""

    cdef double *_bounds
    cdef long long *_counts
    cdef Py_ssize_t _n
    cdef readonly tuple bounds
    cdef public double sum

    def __cinit__(self, bounds):
        cdef tuple b = tuple([float(x) for x in bounds])
        cdef Py_ssize_t i, n = len(b)
        if n == 0 or b[n - 1] != INFINITY:
            raise ValueError("a histogram's bounds must end with +Inf")
        self._bounds = <double *>PyMem_Malloc(n * sizeof(double))
        self._counts = <long long *>PyMem_Malloc(n * sizeof(long long))
        if self._bounds == NULL or self._counts == NULL:
            raise MemoryError()
        for i in range(n):
            self._bounds[i] = b[i]
            self._counts[i] = 0
        self._n = n
        self.bounds = b
        self.sum = 0.0

    def __dealloc__(self):
        PyMem_Free(self._bounds)
        PyMem_Free(self._counts)

    @property
    def counts(self):
        """The count per bucket since the last ``take`` (a copy)."""
        return [self._counts[i] for i in range(self._n)]

    cdef inline void add(self, double value):
        # bisect_left over ascending bounds ending with +Inf: the number of bounds below
        # the value (0 for NaN, which compares below nothing)
        cdef Py_ssize_t i = 0, last = self._n - 1
        while i < last and self._bounds[i] < value:
            i += 1
        self._counts[i] += 1
        self.sum += value

    def observe(self, double value):
        self.add(value)

    def take(self):
        """The counts and sum since the last take, and zero them (the flush's read)."""
        counts = self.counts
        total = self.sum
        cdef Py_ssize_t i
        for i in range(self._n):
            self._counts[i] = 0
        self.sum = 0.0
        return counts, total


cdef class Series:
    """What every series has: whether it waits for a flush, and the list it waits on."""

    cdef list _queue
    cdef public bint dirty

    def __init__(self, list queue not None):
        self._queue = queue
        self.dirty = False

    cdef inline void mark(self) except *:
        if not self.dirty:
            self.dirty = True
            self._queue.append(self)

    def touch(self):
        """Queue this series for the next flush (once until the flush clears ``dirty``)."""
        self.mark()


cdef class ServiceSeries(Series):
    """The counts labelled with the service alone: request durations, open tunnels and
    (wss/mwss listeners) TLS handshake times."""

    cdef public LocalHistogram duration
    cdef public long long tunnels_open
    cdef public object tls

    def __init__(self, list queue not None, duration_bounds):
        Series.__init__(self, queue)
        self.duration = LocalHistogram(duration_bounds)
        self.tunnels_open = 0
        self.tls = None

    def relaying(self, bint opened):
        """A tunnel of the service began (``True``) or stopped relaying bytes."""
        self.tunnels_open += 1 if opened else -1
        self.mark()


cdef class ClientSeries(Series):
    """The counts GOST labels with (service, client)."""

    cdef public ServiceSeries service
    cdef public long long requests, in_flight, errors, bytes_in, bytes_out

    def __init__(self, list queue not None, ServiceSeries service not None):
        Series.__init__(self, queue)
        self.service = service
        self.requests = self.in_flight = self.errors = self.bytes_in = self.bytes_out = 0

    cdef inline void count_start(self) except *:
        self.requests += 1
        self.in_flight += 1
        self.mark()

    def relaying(self, bint opened):
        """A tunnel of this series began (``True``) or stopped relaying bytes: its
        service's open-tunnel count (one call from the tunnel, not two)."""
        cdef ServiceSeries s = self.service
        s.tunnels_open += 1 if opened else -1
        s.mark()

    def started(self):
        self.count_start()

    def ended(self, bint error, double seconds, long long bytes_in, long long bytes_out):
        """A request of this series ended after ``seconds``, with these bytes."""
        self.in_flight -= 1
        if error:
            self.errors += 1
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out
        self.mark()
        cdef ServiceSeries s = self.service
        s.duration.add(seconds)
        s.mark()

    def transferred(self, long long bytes_in, long long bytes_out):
        """Bytes that GOST labels with this series (the TCP peer) when a proxy in front
        named another client for the request."""
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out
        self.mark()


cdef class NodeSeries(Series):
    """A chain node's connect times."""

    cdef public LocalHistogram connect

    def __init__(self, list queue not None, connect_bounds):
        Series.__init__(self, queue)
        self.connect = LocalHistogram(connect_bounds)


cdef class SeriesTable:
    """The series of a process, found by one dict lookup per hook. A miss calls the
    factory given (``new_client(service, client)``, ``new_node(chain, node)``), which
    makes the series with its labels and puts it in ``clients`` / ``nodes``."""

    cdef public dict clients, nodes
    cdef public list dirty
    cdef object _new_client, _new_node

    def __init__(self, new_client, new_node):
        self.clients = {}
        self.nodes = {}
        self.dirty = []
        self._new_client = new_client
        self._new_node = new_node

    def request_started(self, service, client):
        """A request of ``client`` on ``service`` began: its series, counted."""
        cdef ClientSeries s
        found = self.clients.get((service, client))
        if found is None:
            found = self._new_client(service, client)
        s = <ClientSeries?>found
        s.count_start()
        return s

    def node_connected(self, chain, node, double seconds):
        """A dial reached ``node`` of ``chain`` in ``seconds``."""
        cdef NodeSeries s
        found = self.nodes.get((chain, node))
        if found is None:
            found = self._new_node(chain, node)
        s = <NodeSeries?>found
        s.connect.add(seconds)
        s.mark()

    def take_dirty(self):
        """The series queued since the last call, their ``dirty`` cleared, the queue
        emptied in place (every series holds that list)."""
        cdef list dirty = list(self.dirty)
        cdef Series s
        del self.dirty[:]
        for s in dirty:
            s.dirty = False
        return dirty
