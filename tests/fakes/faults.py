"""What both API fakes (github.py, cloudflare.py) share about faults that
hit every step of a lifecycle once: a fault with "each": true applies to
the first request of each kind of call (its method and its path with ids
as *) since it was set, so one lifecycle meets it at every step and still
converges; and a successful answer cut short ("truncate"), as a proxy or a
dropped connection leaves it: the change was made, the client cannot know."""
import re

ID = re.compile(r"^(\d+|[0-9a-f]{8,}|[0-9a-f]{8}-[0-9a-f-]{27}|ghs_\w+)$")


def template(method, path):
    return method + " " + "/".join("*" if ID.match(s) else s for s in path.split("/"))


def first_of_each(f, method, path):
    """For an "each" fault: is this the first call of its kind? Marks it."""
    if not f.get("each"):
        return True
    seen = f.setdefault("seen", [])
    t = template(method, path)
    if t in seen:
        return False
    seen.append(t)
    return True


def truncate(resp):
    """Half the body goes out under the whole body's Content-Length, and
    the connection closes: the client reads a short answer."""
    data = resp.get_data()
    resp.response = [data[:len(data) // 2]]
    resp.headers["Content-Length"] = str(len(data))
    resp.headers["Connection"] = "close"
    return resp
