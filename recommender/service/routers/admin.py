"""Admin: retraining jobs and model versions (``Authorization: Bearer <admin token>``, checked
for every route of the router)."""

from __future__ import annotations

from contextlib import nullcontext

from fastapi import APIRouter, Depends, HTTPException, status

from recommender import store

from ..deps import RuntimeDep, SessionDep, SettingsDep, require_admin
from ..schemas import (
    Activated,
    JobAccepted,
    JobOut,
    ModelList,
    ModelOut,
    Progress,
    PublishRequest,
    RetrainRequest,
)
from ..serving import LoadedModel
from ..training import WARM_START_EPOCHS, VersionExistsError, publish_model, rbm_config
from ..validation import JobIdPath, VersionPath

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])


@router.post(
    "/retrain",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobAccepted,
    responses={409: {"description": "warm_start with no active model."}},
)
def retrain(
    session: SessionDep,
    settings: SettingsDep,
    runtime: RuntimeDep,
    body: RetrainRequest | None = None,
) -> JobAccepted:
    """Queue a training job, or return the one already queued or running.

    ``config`` overrides RBMConfig fields; they are validated now, not when the job runs.
    The served model is fitted on every rating; with ``test_fraction`` > 0 an evaluation fit
    on the rest of each user's ratings comes first and gives the job's metrics.
    ``warm_start`` continues the active model for ``warm_start_epochs`` epochs (409 when no
    model is active).
    """
    body = body or RetrainRequest()
    rbm_config({**settings.train_config, **body.config}, settings=settings)
    test_fraction = body.test_fraction
    if test_fraction is None:  # a warm start is the quick path: no evaluation unless asked
        test_fraction = 0.0 if body.warm_start else settings.test_fraction
    params: dict = {"config": body.config, "test_fraction": test_fraction}
    if body.warm_start:
        # The check and the queueing share one write transaction: on SQLite a read
        # transaction that then writes cannot wait for the lock (it fails at once with
        # "database is locked" when another connection wrote in between).
        store.begin_write(session)
        if store.active_version(session) is None:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                "warm_start needs an active model to start from, and none is active: run a "
                "retrain without warm_start (or publish a model) first",
            )
        params["warm_start"] = True
        params["warm_start_epochs"] = body.warm_start_epochs or WARM_START_EPOCHS
    job, created = store.enqueue_job(session, params=params)
    session.commit()  # before the worker looks for it
    if created and runtime.worker is not None:
        runtime.worker.wake()
    return JobAccepted(job_id=job.id, status=job.status, created=created)


@router.get("/jobs/{job_id}", response_model=JobOut)
def get_job(job_id: JobIdPath, session: SessionDep) -> JobOut:
    """Status, progress (epoch of epochs), held-out metrics, model version, error."""
    job = store.get_job(session, job_id=job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id}")
    return JobOut(
        job_id=job.id,
        status=job.status,
        progress=Progress(
            epoch=job.epoch,
            epochs=job.epochs,
            phase=_phase(job.params or {}, job.epoch) if job.status == "running" else None,
        ),
        params=job.params or {},
        metrics=job.metrics,
        model_version=job.model_version,
        error=job.error,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def _phase(params: dict, epoch: int) -> str | None:
    """The phase a running job is in, from the phases the worker resolved and the epoch."""
    phases = params.get("phases")
    if not phases:
        return None
    end = 0
    for name, epochs in phases:
        end += epochs
        if epoch <= end:  # at a phase's last epoch it is still scoring (evaluation) or saving
            return name
    return phases[-1][0]


@router.get("/models", response_model=ModelList)
def list_models(session: SessionDep) -> ModelList:
    """Every model version, newest first, and which one is active."""
    active = store.active_version(session)
    return ModelList(
        active_version=active,
        models=[_model_out(m, active) for m in store.list_models(session)],
    )


def _model_out(m: store.ModelVersion, active: str | None) -> ModelOut:
    return ModelOut(
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


@router.post(
    "/models",
    status_code=status.HTTP_201_CREATED,
    response_model=ModelOut,
    responses={409: {"description": "A model version of this name exists."}},
)
def publish(
    body: PublishRequest,
    session: SessionDep,
    settings: SettingsDep,
    runtime: RuntimeDep,
) -> ModelOut:
    """Register a model trained elsewhere (``recommender train``, ``torchrun ...
    --distributed``) whose artifact folder was copied into RECOMMENDER_MODEL_DIR; with
    ``activate`` serve it (every serving process follows within its model poll interval).

    Only a folder directly inside the model directory is accepted (the version name has no
    ``/`` or ``..``, and links are refused), and the artifact is checked as a retrain's is:
    it loads, its item map is sane, its shapes agree. 422 names what is wrong; 409 when the
    version is already registered.
    """
    # With activate, the swap lock comes before the row's write transaction (SQLite's write
    # lock): a refresh or another activation takes them in that order too.
    with runtime.models.swapping() if body.activate else nullcontext():
        try:
            row, model = publish_model(session, model_dir=settings.model_dir,
                                       version=body.version)
        except VersionExistsError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        if body.activate:  # the row and the activation commit together, then it serves
            runtime.models.activate(
                session, LoadedModel(version=row.version, model=model, metrics=dict(row.metrics))
            )
        else:
            session.commit()
    return _model_out(row, row.version if body.activate else store.active_version(session))


@router.post(
    "/models/{version}/activate",
    response_model=Activated,
    responses={409: {"description": "Its artifact does not load; nothing changed."}},
)
def activate(version: VersionPath, session: SessionDep, runtime: RuntimeDep) -> Activated:
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
    runtime.models.activate(session, loaded)
    return Activated(active_version=version)
