from django_blueque.progress import report_progress

try:
    from django.tasks import task  # Django 6
except ImportError:
    from django_tasks import task  # Django 5.2, with the backport


@task
def send_report(user_id: int) -> dict[str, int]:
    pages = 12  # make the report here
    return {"user": user_id, "pages": pages}


@task
def transcode(video_id: int, chunks: int) -> str:
    for i in range(chunks):
        ...  # transcode chunk i
        report_progress((i + 1) / chunks, f"chunk {i + 1} of {chunks}")
    return f"video {video_id}: {chunks} chunks"
