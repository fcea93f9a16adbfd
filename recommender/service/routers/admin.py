"""Admin: retraining jobs and model versions (``Authorization: Bearer <admin token>``)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from recommender import store

from ..deps import AdminDep, RuntimeDep, SessionDep, SettingsDep
from ..jobs import rbm_config
from ..schemas import (
    Activated,
    JobAccepted,
    JobOut,
    ModelList,
    ModelOut,
    Progress,
    RetrainRequest,
)

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post("/retrain", status_code=status.HTTP_202_ACCEPTED, response_model=JobAccepted)
def retrain(
    _admin: AdminDep,
    session: SessionDep,
    settings: SettingsDep,
    runtime: RuntimeDep,
    body: RetrainRequest | None = None,
) -> JobAccepted:
    """Queue a training job, or return the one already queued or running.

    ``config`` overrides RBMConfig fields; they are validated now, not when the job runs.
    """
    body = body or RetrainRequest()
    rbm_config({**settings.train_config, **body.config}, settings=settings)
    params: dict = {"config": body.config}
    if body.test_fraction is not None:
        params["test_fraction"] = body.test_fraction
    job, created = store.enqueue_job(session, params=params)
    if created and runtime.worker is not None:
        runtime.worker.wake()
    return JobAccepted(job_id=job.id, status=job.status, created=created)


@router.get("/jobs/{job_id}", response_model=JobOut)
def get_job(job_id: int, _admin: AdminDep, session: SessionDep) -> JobOut:
    """Status, progress (epoch of epochs), held-out metrics, model version, error."""
    job = store.get_job(session, job_id=job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id}")
    return JobOut(
        job_id=job.id,
        status=job.status,  # type: ignore[arg-type]
        progress=Progress(epoch=job.epoch, epochs=job.epochs),
        params=job.params or {},
        metrics=job.metrics,
        model_version=job.model_version,
        error=job.error,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


@router.get("/models", response_model=ModelList)
def list_models(_admin: AdminDep, session: SessionDep) -> ModelList:
    """Every model version, newest first, and which one is active."""
    active = store.active_version(session)
    return ModelList(
        active_version=active,
        models=[
            ModelOut(
                version=m.version,
                active=m.version == active,
                job_id=m.job_id,
                created_at=m.created_at,
                metrics=m.metrics or {},
                params=m.params or {},
                n_users=m.n_users,
                n_items=m.n_items,
                n_ratings=m.n_ratings,
                training_seconds=m.training_seconds,
            )
            for m in store.list_models(session)
        ],
    )


@router.post("/models/{version}/activate", response_model=Activated)
def activate(version: str, _admin: AdminDep, session: SessionDep, runtime: RuntimeDep) -> Activated:
    """Serve ``version`` (roll back or forward). Its artifact is loaded before switching, so
    a broken artifact is refused (409) and the current model keeps serving."""
    if store.get_model(session, version=version) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no model version {version!r}")
    session.rollback()  # end the read before the (possibly slow) load
    try:
        loaded = runtime.models.load(version)
    except Exception as exc:  # noqa: BLE001 - refuse, keep serving the current model
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"model {version} cannot be loaded, nothing changed: {type(exc).__name__}: {exc}",
        ) from exc
    store.activate_model(session, version=version)
    runtime.models.install(loaded)
    return Activated(active_version=version)
