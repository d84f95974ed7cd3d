"""Builds the services once per cold start; the one place that wires them together."""

from __future__ import annotations

import functools

from chalicelib.config import get_settings
from chalicelib.services.accounts import AccountService
from chalicelib.services.workflows import WorkflowService


@functools.lru_cache(maxsize=1)
def account_service() -> AccountService:
    return AccountService()


@functools.lru_cache(maxsize=1)
def workflow_service() -> WorkflowService:
    service = WorkflowService()
    service.on_change.append(lambda *change: lifecycle().workflow_changed(*change))
    return service


@functools.lru_cache(maxsize=8)
def aws_client(service: str):
    # boto3 is imported by the functions that send messages or store payloads only.
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 8}, connect_timeout=5, read_timeout=30)
    return boto3.client(service, region_name=get_settings().region, config=config)


@functools.lru_cache(maxsize=1)
def runtime():
    from chalicelib.services.queues import Queue
    from chalicelib.services.runtime import Runtime
    from chalicelib.store.executions import ExecutionRepository
    from chalicelib.store.payloads import PayloadStore

    settings = get_settings()
    sqs = aws_client("sqs")
    engine = Runtime(
        executions=ExecutionRepository(), workflows=workflow_service().repository,
        payloads=PayloadStore(aws_client("s3"), settings.payload_bucket),
        steps=Queue(sqs, settings.table_name("steps")), deliveries=Queue(sqs, settings.table_name("deliveries")),
        settings=settings, integrations=integration_service(),
    )
    engine.emit = lambda *event, **how: lifecycle().emit(*event, **how)
    engine.route_event = lambda account_id, event, depth: event_service().route(account_id, event, depth=depth)
    engine.fire_trigger = lambda message: traffic_ingest().fire(message)
    return engine


@functools.lru_cache(maxsize=1)
def execution_service():
    from chalicelib.services.executions import ExecutionService

    return ExecutionService(runtime(), workflow_service())


@functools.lru_cache(maxsize=1)
def deliveries():
    from chalicelib.handlers.deliveries import Deliveries
    from chalicelib.store.webhooks import DeliveryLog, WebhookRepository

    return Deliveries(execution_service(), WebhookRepository(), DeliveryLog(), runtime().delivery_queue)


@functools.lru_cache(maxsize=1)
def schedules():
    from chalicelib.services.schedules import ScheduleFirer

    engine = runtime()
    return ScheduleFirer(engine, trigger_starter(), threshold_evaluator(), clock=engine.clock)


@functools.lru_cache(maxsize=1)
def threshold_evaluator():
    from chalicelib.services.traffic import ThresholdEvaluator
    from chalicelib.store.buckets import TrafficRepository

    return ThresholdEvaluator(TrafficRepository(), trigger_starter())


@functools.lru_cache(maxsize=1)
def bucket_service():
    from chalicelib.services.traffic import BucketService
    from chalicelib.store.buckets import BucketRepository

    return BucketService(BucketRepository(), workflow_service())


@functools.lru_cache(maxsize=1)
def traffic_ingest():
    from chalicelib.services.traffic import TrafficIngest
    from chalicelib.store.buckets import TrafficRepository

    engine = runtime()
    return TrafficIngest(bucket_service(), TrafficRepository(), trigger_starter(), engine.payloads, engine.step_queue)


@functools.lru_cache(maxsize=1)
def trigger_starter():
    from chalicelib.services.triggering import TriggerStarter
    from chalicelib.store.buckets import BucketRepository

    return TriggerStarter(runtime(), BucketRepository())


@functools.lru_cache(maxsize=1)
def schedule_views():
    from chalicelib.services.schedule_views import ScheduleViews

    return ScheduleViews(workflow_service())


@functools.lru_cache(maxsize=1)
def inbound_webhooks():
    from chalicelib.services.hooks import InboundWebhooks

    return InboundWebhooks(trigger_starter())


@functools.lru_cache(maxsize=1)
def event_service():
    from chalicelib.services.events import EventService
    from chalicelib.store.event_types import EventTypeRepository

    return EventService(trigger_starter(), EventTypeRepository(), document_service())


@functools.lru_cache(maxsize=1)
def integration_service():
    from chalicelib.services.integrations import IntegrationService
    from chalicelib.store.integrations import IntegrationRepository

    return IntegrationService(IntegrationRepository())


@functools.lru_cache(maxsize=1)
def lifecycle():
    from chalicelib.services.lifecycle import Lifecycle
    from chalicelib.store.webhooks import WebhookRepository

    return Lifecycle(WebhookRepository(), queue=lambda: runtime().delivery_queue, steps=lambda: runtime().step_queue,
                     router=event_service)


@functools.lru_cache(maxsize=1)
def webhook_service():
    from chalicelib.services.webhooks import WebhookService
    from chalicelib.store.webhooks import DeliveryLog, WebhookRepository

    return WebhookService(WebhookRepository(), DeliveryLog())


@functools.lru_cache(maxsize=1)
def document_service():
    from chalicelib.services.documents import DocumentService
    from chalicelib.store.documents import DocumentRepository

    return DocumentService(DocumentRepository(), aws_client("s3"), get_settings().payload_bucket,
                           emit=lambda *event: lifecycle().emit(*event, fresh=True))


@functools.lru_cache(maxsize=1)
def extraction_schemas():
    from chalicelib.services.documents import ExtractionSchemas
    from chalicelib.store.documents import ExtractionSchemaRepository

    return ExtractionSchemas(ExtractionSchemaRepository())


@functools.lru_cache(maxsize=1)
def template_service():
    from chalicelib.services.templates import TemplateService
    from chalicelib.store.documents import TemplateRepository

    return TemplateService(TemplateRepository(), workflow_service())
