import json

from django_blueque.protocol import Client, Task


def transcode(task: Task) -> str:  # the HANDLER of the "video" queue
    source = json.loads(task.parameters or "{}")["url"]
    ...  # transcode it
    return json.dumps({"output": source.rsplit("/", 1)[-1] + ".mp4"})


def enqueue_video(redis_url: str, url: str) -> str:  # anywhere, even without Django
    client = Client(redis_url)  # or blueque.Client, from Blueque 1.0.1
    return client.get_queue("video").enqueue(json.dumps({"url": url}))
